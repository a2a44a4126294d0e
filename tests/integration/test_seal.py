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


@pytest.fixture(scope="module")
def node():
    """One node for the file (ganache takes seconds to start): each test seals with its own
    new key, so the tests share nothing but blocks."""
    g = start_ganache()
    yield g
    alive = g.alive()
    g.stop()
    assert alive, "ganache died during the tests"


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
    data = bytes.fromhex(tx["input"][2:])  # intrinsic gas only: nothing runs on a self-transfer
    gas = 21000 + sum(16 if x else 4 for x in data)
    assert int(node.receipt(mined["tx_hash"])["gasUsed"], 16) == gas, gas
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
    # Bad queries: 400; nothing covers a size beyond the sealed ones yet: 404.
    for q in ("/ledger/seals?from_nonce=x", "/ledger/seals?limit=0", "/ledger/seals?limit=1001",
              "/ledger/seals/cover", "/ledger/seals/cover?size=-1",
              "/ledger/seals?from_nonce=9223372036854775808",
              "/ledger/seals/cover?size=9999999999999999999"):
        assert get(b, q)[0] == 400, q
    assert get(b, "/ledger/seals/cover?size=%d" % (cover["new_size"] + 1))[0] == 404
    status, page = get(b, "/ledger/seals?from_nonce=0&limit=1")
    assert status == 200 and [x["nonce"] for x in page["seals"]] == [0], page
    assert page["next_from_nonce"] == 1, page
    # Metrics.
    assert b.metric("ledgermq_seals", '{state="confirmed"}') >= 1
    assert b.metric("ledgermq_seal_last_sealed_size") >= size

    # Failures (exit 3), each with its reason; unusable input is 1.
    cp = cover["seal"]["checkpoint"]
    lines = cp.split("\n")
    lines[1] = str(int(lines[1]) + 1)  # another size: the signature no longer holds
    changed = dict(cover, seal=dict(cover["seal"], checkpoint="\n".join(lines)))
    code, out = verify(args, json.dumps(changed), tmp_path, "changed.json")
    assert code == 3 and "signature" in out, out
    code, out = verify(args[:-1] + ["100"], json.dumps(cover), tmp_path, "few.json")
    assert code == 3 and "confirmations" in out, out
    # Another sender: account 1 sends the very same calldata to itself.
    other = node.accounts[1]
    h = node.send_tx(from_=other, to=other, data=calldata(cover["seal"]), gas=100_000)
    node.mine(3)
    forged = dict(cover, seal=dict(cover["seal"], tx_hash=h))
    code, out = verify(args, json.dumps(forged), tmp_path, "forged.json")
    assert code == 3 and "not sent by the sealing address" in out, out
    # A receipt of another size than the cover's: the proof is not for it.
    code, out = verify(args, json.dumps(dict(cover, old_size=size + 1)) + "\n" + json.dumps(ack),
                       tmp_path, "othersize.json")
    assert code == 3, out
    code, out = verify(args, "{\"no\": \"seal\"}", tmp_path, "bad.json")
    assert code == 1 and "unusable" in out, out
    code, out = verify(["--key", vkey, "--rpc", "http://127.0.0.1:9", "--seal-address", addr],
                       json.dumps(cover), tmp_path, "nonode.json")
    assert code == 1, out


def test_kill9_between_commit_and_send_uses_the_nonce_once(start_broker, node, tmp_path):
    key, addr = eth_key(tmp_path, node)
    b = start_broker(config(node, key), env=dict(TICK_ENV, LMQ_TEST_SEAL_KILL_BEFORE_SEND="1"),
                     expect_exit=-9)
    dc.ready_addresses(b)
    s = dc.session(b, lc.Identity())
    env = s.ident.envelope(lc.Identity().id, {"n": 0})
    s.send(env)
    b.wait_event("seal_test_kill", timeout=WAIT_S)
    assert b.proc.wait(timeout=10) == -9
    assert nonces_on_chain(node, addr) == []  # committed, never sent
    b.restart(env=TICK_ENV)
    dc.ready_addresses(b)
    b.wait_event("seal_rebroadcast", timeout=WAIT_S)
    mined = wait_seal(b, lambda x: x["state"] == "mined", "the seal mined after the restart")
    assert [m["nonce"] for m in mined] == [0] and mined[0]["attempts"] == 1, mined
    # A second seal after more entries takes the next nonce: no reuse, no gap.
    s = dc.session(b, lc.Identity())
    send_note(s, lc.Identity().id, 1)
    wait_for("two seals mined", lambda: len([x for x in seals(b) if x["state"] != "sent"]) == 2)
    chain = nonces_on_chain(node, addr)
    assert [n for n, _, _ in chain] == [0, 1], chain
    assert all(to.lower() == addr.lower() for _, to, _ in chain), chain


def test_control_without_the_rebroadcast_the_nonce_stays_unused(start_broker, node, tmp_path):
    """The kill -9 check above can fail: the same crash, and a restart against a node that
    has no chain-id match (sealing halted): nothing is ever sent, the nonce stays unused."""
    key, addr = eth_key(tmp_path, node)
    b = start_broker(config(node, key), env=dict(TICK_ENV, LMQ_TEST_SEAL_KILL_BEFORE_SEND="1"),
                     expect_exit=-9)
    dc.ready_addresses(b)
    s = dc.session(b, lc.Identity())
    s.send(s.ident.envelope(lc.Identity().id, {"n": 0}))
    b.wait_event("seal_test_kill", timeout=WAIT_S)
    assert b.proc.wait(timeout=10) == -9
    b.config_text = config(node, key, chain_id=CHAIN_ID + 1)
    b.restart(env=TICK_ENV)
    dc.ready_addresses(b)
    err = b.wait_event("seal_error", timeout=WAIT_S, pred=lambda e: e["what"] == "chain_id")
    assert "sealing stopped" in err["reason"], err
    assert b.metric("ledgermq_seal_halted") == 1
    assert [x["state"] for x in seals(b)] == ["sent"]
    node.mine(1)
    assert nonces_on_chain(node, addr) == []


def test_a_stuck_seal_is_replaced_with_higher_fees(start_broker, node, tmp_path):
    key, addr = eth_key(tmp_path, node)
    b = start(start_broker, node, key, extra="bump_after_s = 1\n")
    node.rpc("miner_stop")
    try:
        s = dc.session(b, lc.Identity())
        send_note(s, lc.Identity().id, 1)
        first = b.wait_event("seal_sent", timeout=WAIT_S)
        bumped = b.wait_event("seal_bumped", timeout=WAIT_S)
        assert bumped["nonce"] == first["nonce"] and bumped["attempt"] == 2, bumped
        assert bumped["tx_hash"] != first["tx_hash"]
        t1 = node.rpc("eth_getTransactionByHash", [first["tx_hash"]])
        t2 = node.rpc("eth_getTransactionByHash", [bumped["tx_hash"]])
        assert t2 is not None, "the replacement is not in the node's pool"
        if t1 is not None:  # both fees at least 10% up (12.5% asked)
            for f in ("maxFeePerGas", "maxPriorityFeePerGas"):
                assert int(t2[f], 16) * 10 >= int(t1[f], 16) * 11, (f, t1, t2)
    finally:
        node.rpc("miner_start")
    node.mine(1)
    mined = wait_seal(b, lambda x: x["state"] == "mined", "the replacement mined")
    assert mined[0]["attempts"] >= 2 and mined[0]["nonce"] == first["nonce"], mined
    assert node.receipt(bumped["tx_hash"]) is not None, "the replacement was not mined"
    # Every transaction of the sealing address used the seal's nonce: the bump signed the same
    # nonce again, never a new one. (ganache, unlike geth, keeps the replaced transaction in
    # its paused pool and mines both: hence no count of one here.)
    chain = nonces_on_chain(node, addr)
    assert chain and all(n == first["nonce"] for n, _, _ in chain), chain


def test_a_reorg_that_drops_a_mined_seal_resends_it(start_broker, node, tmp_path):
    key, addr = eth_key(tmp_path, node)
    b = start(start_broker, node, key)
    snap = node.snapshot()
    s = dc.session(b, lc.Identity())
    send_note(s, lc.Identity().id, 1)
    first = wait_seal(b, lambda x: x["state"] == "mined", "a mined seal")[0]
    node.revert(snap)  # the seal's block is gone (and the funding before it stays)
    assert node.rpc("eth_getTransactionReceipt", [first["tx_hash"]]) is None
    node.mine(1)
    b.wait_event("seal_reorged", timeout=WAIT_S)
    wait_for("the seal mined again", lambda: len(b.events("seal_mined")) >= 2)
    again = wait_seal(b, lambda x: x["state"] == "mined", "the seal mined again")[0]
    assert again["nonce"] == first["nonce"] and again["tx_hash"] == first["tx_hash"], again
    assert node.rpc("eth_getTransactionReceipt", [again["tx_hash"]]) is not None
    node.mine(3)
    wait_seal(b, lambda x: x["state"] == "confirmed", "the resent seal confirmed")
    assert [n for n, _, _ in nonces_on_chain(node, addr)] == [first["nonce"]]


def test_an_unfunded_key_is_a_clear_error_and_nothing_is_sent(start_broker, node, tmp_path):
    key, addr = eth_key(tmp_path, node, fund=False)
    b = start(start_broker, node, key)
    s = dc.session(b, lc.Identity())
    send_note(s, lc.Identity().id, 1)
    err = b.wait_event("seal_error", timeout=WAIT_S, pred=lambda e: e["what"] == "send")
    assert "fund" in err["reason"], err
    assert b.metric("ledgermq_seal_errors_total") >= 1
    assert b.metric("ledgermq_seals", '{state="sent"}') == 1
    assert nonces_on_chain(node, addr) == []
    assert get(b, "/ledger/seals/cover?size=1")[0] == 404  # nothing confirmed covers it


def test_another_key_than_the_stored_seals_stops_sealing_without_a_gap(start_broker, node,
                                                                        tmp_path):
    key, addr = eth_key(tmp_path, node)
    b = start(start_broker, node, key)
    s = dc.session(b, lc.Identity())
    send_note(s, lc.Identity().id, 1)
    wait_seal(b, lambda x: x["state"] == "mined", "a mined seal")
    node.mine(3)
    wait_seal(b, lambda x: x["state"] == "confirmed", "a confirmed seal")
    s.close()
    b.terminate()
    other, other_addr = eth_key(tmp_path, node, name="other.key")
    b.config_text = config(node, other)
    b.restart(env=TICK_ENV)
    err = b.wait_event("seal_error", timeout=WAIT_S, pred=lambda e: e["what"] == "nonce")
    assert "sealing stopped" in err["reason"], err
    assert b.metric("ledgermq_seal_halted") == 1
    assert nonces_on_chain(node, other_addr) == []


def readme_sealing_block():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        text = f.read()
    start = text.index("```sh\n", text.index("### Sealing to Ethereum")) + len("```sh\n")
    return text[start:text.index("```", start)]


def test_the_readme_sealing_commands_work(start_broker, node, tmp_path):
    """README "Sealing to Ethereum" as printed, against the test's ganache instead of npx's and
    the harness's broker instead of the serve line: keygen, funding, the [seal] file, the seal
    listing, the cover and verify --seal (exit 0)."""
    block = readme_sealing_block().replace("http://127.0.0.1:8545", node.url)
    lines = block.replace("\\\n", "").splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("ledgermq serve "))
    assert lines[0].startswith("npx ganache@7 ") and "--config seal.ini" in lines[cut], lines
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ledgermq").symlink_to(os.path.abspath(BIN))
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))

    def sh(script):
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (script, p.stdout, p.stderr)
        return p.stdout

    addr = sh("\n".join(lines[1:cut]) + "\necho \"ADDR=$ADDR\"\n").split("ADDR=")[-1].strip()
    assert int(node.rpc("eth_getBalance", [addr, "latest"]), 16) == 10**18
    # The harness runs serve in a directory of its own: key_file as an absolute path.
    ini = (tmp_path / "seal.ini").read_text().replace("= seal.key", "= %s" % (tmp_path / "seal.key"))
    b = dc.ready_addresses(start_broker(ini + "[server]\nhttp = 127.0.0.1:0\n", env=TICK_ENV,
                                        data_dir=str(tmp_path / "data")))
    s = dc.session(b, lc.Identity())
    send_note(s, lc.Identity().id, 1)
    wait_seal(b, lambda x: x["state"] == "confirmed", "the README's seal confirmed")
    rest = "\n".join(lines[cut + 1:]).replace("127.0.0.1:8080", b.http_addr)
    out = sh("ADDR=%s\n%s\n" % (addr, rest))
    assert '"ok":true' in out, out
    assert json.loads((tmp_path / "cover.json").read_text())["seal"]["state"] == "confirmed"


@pytest.mark.parametrize("text, message", [
    ("[seal]\nrpc = http://127.0.0.1:1\nchain_id = 1\n", "[seal] needs key_file"),
    ("[seal]\nkey_file = k\nchain_id = 1\n", "[seal] needs rpc"),
    ("[seal]\nrpc = ftp://x\n", "[seal] rpc: expected an http:// or https:// URL"),
    ("[seal]\nevery = 10 minutes\n", "[seal] every: expected a period"),
    ("[seal]\nconfirmations = 0\n", "[seal] confirmations: expected an integer 1..10000"),
])
def test_bad_seal_config_stops_the_start_with_one_line(tmp_path, text, message):
    path = tmp_path / "bad.ini"
    path.write_text(text)
    p = subprocess.run([BIN, "serve", "--config", str(path)], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode == 1 and message in p.stderr, p.stderr


def seal_node(count="0x0", base_fee="0x7"):
    """A node in this process (test_chain_follow.FakeNode) with what sealing asks: the
    transaction count `count`, priority fee 1 wei, the latest block's base fee `base_fee`;
    eth_sendRawTransaction records the raw transactions in .raws."""
    from test_chain_follow import FakeNode

    class SealNode(FakeNode):
        def answer(self, r):
            m = r["method"]
            if m in ("eth_getTransactionCount", "eth_maxPriorityFeePerGas"):
                result = count if m == "eth_getTransactionCount" else "0x1"
            elif m == "eth_getBlockByNumber":
                result = {"number": "0x1", "hash": self.word(2), "parentHash": self.word(1),
                          "timestamp": "0x1", "baseFeePerGas": base_fee}
            elif m == "eth_sendRawTransaction":
                self.raws.append(r["params"][0])
                result = self.word(7)
            else:
                return FakeNode.answer(self, r)
            return {"jsonrpc": "2.0", "id": r["id"], "result": result}

    fake = SealNode(1)
    fake.raws = []
    fake.g = type("G", (), {"url": fake.url})()  # what start() and config() read
    return fake


def test_a_huge_base_fee_from_the_node_caps_the_fee_instead_of_wrapping(start_broker, tmp_path):
    # maxFeePerGas is 2 x base fee + priority fee, capped at max_fee_gwei: a node answering a base
    # fee of 2^63 once made that sum wrap to 1 wei (a seal that never mines), not the cap.
    fake = seal_node(base_fee="0x8000000000000000")
    try:
        key, _ = eth_key(tmp_path, None, fund=False)
        b = start(start_broker, fake.g, key)
        alice, bob = lc.Identity(), lc.Identity()
        send_note(dc.session(b, alice), bob.id)
        b.wait_event("seal_sent", timeout=WAIT_S)
        raw = bytes.fromhex(fake.raws[0][2:])
        assert raw[0] == 2  # EIP-1559: 0x02 || rlp([chain_id, nonce, prio, max_fee, ...])
        fields = rlp_list(raw[1:])
        prio, max_fee = (int.from_bytes(f, "big") for f in fields[2:4])
        assert (prio, max_fee) == (1, 500 * 10**9), (prio, max_fee)
    finally:
        fake.close()


def rlp_list(data):
    """The items of the RLP list data holds (byte strings; nested lists as their raw bytes)."""
    def item(at):
        b = data[at]
        if b < 0x80:
            return data[at:at + 1], at + 1
        if b < 0xb8 or 0xc0 <= b < 0xf8:
            n = b - (0x80 if b < 0xc0 else 0xc0)
            return data[at + 1:at + 1 + n], at + 1 + n
        k = b - (0xb7 if b < 0xc0 else 0xf7)
        n = int.from_bytes(data[at + 1:at + 1 + k], "big")
        return data[at + 1 + k:at + 1 + k + n], at + 1 + k + n
    body, _ = item(0)
    data, out, at = body, [], 0
    while at < len(data):
        v, at = item(at)
        out.append(v)
    return out


def test_a_node_count_past_2_63_is_a_bad_answer_and_nothing_is_sent(start_broker, tmp_path):
    # A transaction count of 2^64-1 was taken as the next nonce: the seal after it wrapped to
    # nonce 0, onto the stored seal rows. Now the node check fails and nothing is signed.
    fake = seal_node(count="0xffffffffffffffff")
    try:
        key, _ = eth_key(tmp_path, None, fund=False)
        e = dict(TICK_ENV)
        b = dc.ready_addresses(start_broker(config(fake.g, key), env=e))
        err = b.wait_event("seal_error", timeout=WAIT_S, pred=lambda x: x["what"] == "node")
        assert "transaction count past 2^63-1" in err["reason"], err
        alice, bob = lc.Identity(), lc.Identity()
        send_note(dc.session(b, alice), bob.id)
        with pytest.raises(pytest.fail.Exception):  # 10 ticks of the sealer: still checking
            b.wait_event("seal_sent", timeout=1)
        assert fake.raws == [] and b.proc.poll() is None
    finally:
        fake.close()
