"""The chain follower (src/chain; docs/PROTOCOL.md "Chain follower") against one ganache for the
module: catch-up from a start block then following and a restart (the stored headers are
ganache's); bad watch bodies refused; a log notified decoded, then confirmed; a reorg made with
evm_snapshot/evm_revert (the stored chain stays one chain equal to ganache's, the notified log of
the dropped branch is retracted, the new one notified); verify --notification on a real notice
and on changed ones; kill -9 while logs flow (every log notified exactly once, with a control);
the node stopped (SIGSTOP): node_down (/healthz 503) and back, nothing missed; no node at start;
a reorg deeper than max_reorg_depth halts; watches end with the identity's last pruned session;
an ERC-20 compiled with npm solc, watched before it is deployed.

The contract is a tiny one written in EVM assembly (TRANSFER_INITCODE below, with its source):
any call with calldata (to: 32 bytes, value: 32 bytes) emits
Transfer(address indexed from = caller, address indexed to, uint256 value)."""

import json
import os
import queue
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import dataclient as dc
import ledgerclient as lc
import jsdeps
from ganache import start_ganache

pytestmark = pytest.mark.ledgermq_only

WAIT_S = 20
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_EVENT = "Transfer(address indexed from, address indexed to, uint256 value)"
# Runtime (50 bytes):
#   PUSH1 0x20 PUSH1 0x20 PUSH1 0 CALLDATACOPY    mem[0..32) = calldata[32..64) (value)
#   PUSH1 0 CALLDATALOAD                          topic 2: to
#   CALLER                                        topic 1: from
#   PUSH32 TRANSFER_TOPIC                         topic 0
#   PUSH1 0x20 PUSH1 0 LOG3 STOP                  data: mem[0..32)
# Initcode: PUSH1 50 PUSH1 12 PUSH1 0 CODECOPY PUSH1 50 PUSH1 0 RETURN, then the runtime.
RUNTIME = "6020602060003760003533" + "7f" + TRANSFER_TOPIC[2:] + "60206000a300"
TRANSFER_INITCODE = "0x6032600c60003960326000f3" + RUNTIME
assert len(RUNTIME) == 100


@pytest.fixture(scope="module")
def node():
    g = start_ganache()
    yield g
    alive = g.alive()
    g.stop()
    assert alive, "ganache died during the tests"


def config(g, **keys):
    chain = {"rpc": g.url, "poll_ms": 50, "timeout_ms": 1000, "batch_blocks": 10,
             "confirmations": 3}
    chain.update(keys)
    return "[server]\nhttp = 127.0.0.1:0\n[chain]\n" + "".join(
        "%s = %s\n" % kv for kv in chain.items())


def db(b):
    return sqlite3.connect("file:%s/ledgermq.db?mode=ro" % b.data_dir, uri=True, timeout=10)


def stored_headers(b):
    conn = db(b)
    try:
        return conn.execute("SELECT number, hash, parent_hash FROM chain_headers"
                            " ORDER BY number").fetchall()
    finally:
        conn.close()


def wait_tip(b, g, what="the stored tip reaches the node's head"):
    deadline = time.monotonic() + WAIT_S
    while True:
        head = g.block_number()
        rows = stored_headers(b)
        if rows and rows[-1][0] == head and bytes(rows[-1][1]).hex() == g.rpc(
                "eth_getBlockByNumber", [hex(head), False])["hash"][2:]:
            return rows
        assert time.monotonic() < deadline, (what, head, rows[-3:], b.log_text())
        time.sleep(0.05)


def check_one_chain_equal_to_node(b, g, rows):
    for (n, h, p), (n2, h2, _) in zip(rows[1:], rows):
        assert n == n2 + 1 and bytes(p) == bytes(h2), "not one chain at %d" % n
    for n, h, _ in rows:
        assert g.rpc("eth_getBlockByNumber", [hex(n), False])["hash"] == "0x" + bytes(h).hex(), n


def healthz(b):
    try:
        with urllib.request.urlopen("http://%s/healthz" % b.http_addr, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def metrics(b):
    with urllib.request.urlopen("http://%s/metrics" % b.http_addr, timeout=5) as r:
        return r.read().decode()


def server_id(b):
    status, key = lc.http_json(b.http_addr, "/ledger/key")
    assert status == 200, key
    return key["id"]


def send_env(s, to, body, type_):
    """(leaf, message): the verdict on an envelope; the chain advances on an ack."""
    env = s.ident.envelope(to, body, type_=type_)
    s.send(env)
    leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
    while leaf == "inbox":
        leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
    if leaf == "ack":
        s.ident.advance(env)
    return leaf, msg


def verify_notification(tmp_path, g, message):
    path = tmp_path / "notification.json"
    path.write_text(json.dumps(message))
    p = subprocess.run([os.environ["LEDGERMQ_BIN"], "verify", "--notification", str(path),
                        "--rpc", g.url], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def transfer(g, contract, to, value):
    data = "0x" + to[2:].rjust(64, "0") + hex(value)[2:].rjust(64, "0")
    h = g.send_tx(to=contract, data=data)
    r = g.receipt(h)
    assert r["status"] == "0x1" and len(r["logs"]) == 1, r
    return r


def chain_envelopes(b):
    """The committed ledgermq.chain.* envelopes: [(type, to, body)] in ledger order."""
    conn = db(b)
    try:
        rows = conn.execute("SELECT envelope FROM ledger ORDER BY idx").fetchall()
    finally:
        conn.close()
    out = []
    for (raw,) in rows:
        env = json.loads(bytes(raw))
        if env["type"].startswith("ledgermq.chain.") and env["type"] not in (
                "ledgermq.chain.watch", "ledgermq.chain.unwatch"):
            out.append((env["type"], env["to"], env["body"]))
    return out


def wait_envelopes(b, pred, what):
    deadline = time.monotonic() + WAIT_S
    while True:
        got = chain_envelopes(b)
        if pred(got):
            return got
        assert time.monotonic() < deadline, (what, got, b.log_text())
        time.sleep(0.05)


def test_catch_up_from_start_block_then_follow_with_state_in_healthz_and_metrics(
        start_broker, node):
    node.mine(25)
    start = node.block_number() - 22
    b = dc.ready_addresses(start_broker(config(node, start_block=start)))
    rows = wait_tip(b, node)
    assert rows[0][0] == start, rows[:2]
    check_one_chain_equal_to_node(b, node, rows)
    node.mine(4)
    rows = wait_tip(b, node, "following 4 new blocks")
    check_one_chain_equal_to_node(b, node, rows)
    b.wait_event("chain_state", pred=lambda e: e["to"] == "following")
    assert healthz(b) == (200, {"chain": "following", "status": "ready"})
    m = metrics(b)
    assert 'ledgermq_chain_state{state="following"} 1' in m, m
    assert "ledgermq_chain_tip_block %d" % node.block_number() in m, m
    # Restarted on its store, it continues from the stored tip (no gap, no second start).
    b.terminate()
    node.mine(3)
    b.restart()
    rows = wait_tip(b, node, "after a restart")
    assert rows[0][0] == start
    check_one_chain_equal_to_node(b, node, rows)


def test_follows_beside_data_models_that_open_the_first_batch(start_broker, node, tmp_path):
    # data_init writes its models' index records at start, which opens the first commit batch:
    # the follower's commit hook must register before it (it once did not: an assert at start).
    d = dc.write_models(tmp_path, {"account.json": {
        "$id": "com.example.Account", "type": "object",
        "properties": {"iban": {"type": "string", "x-index": True}}, "required": ["iban"]}})
    node.mine(2)
    b = dc.ready_addresses(start_broker(config(node, start_block=node.block_number() - 1)
                                        + "[data]\nmodels = %s\n" % d))
    check_one_chain_equal_to_node(b, node, wait_tip(b, node))


def test_watch_notify_decoded_confirm_reorg_retracts_and_verify(start_broker, node, tmp_path):
    b = dc.ready_addresses(start_broker(config(node)))
    server = server_id(b)
    _, contract = node.deploy(TRANSFER_INITCODE)
    alice = lc.Identity()
    sa = dc.session(b, alice)
    for body, detail in [({"address": "0x12"}, "address: expected 0x and 40 hex digits"),
                         ({"address": contract, "event": "Transfer(address"}, None),
                         ({"address": contract, "topic0": "0x" + "00" * 32,
                           "event": TRANSFER_EVENT}, "topic0 is not the event's topic 0"),
                         ({"address": contract, "color": "red"}, None)]:
        leaf, msg = send_env(sa, server, body, "ledgermq.chain.watch")
        assert leaf == "reject" and msg["reason"] == "bad_watch", (body, msg)
        assert detail is None or msg["detail"] == detail, msg
    leaf, msg = send_env(sa, server, {"address": contract, "event": TRANSFER_EVENT},
                         "ledgermq.chain.watch")
    assert leaf == "ack", msg
    wait_tip(b, node)
    r1 = transfer(node, contract, bob_addr := "0x" + "ab" * 20, 5)
    message = sa.expect("inbox", timeout=WAIT_S)
    env = message["envelope"]
    lc.verify(env)
    # verify --notification: passes on the real one; a changed block hash (re-signed, so only
    # the node can tell) or log data fails it with 3; a bad signature fails it too.
    code, out = verify_notification(tmp_path, node, message)
    assert code == 0, out
    forged = lc.Identity()
    fake = forged.envelope(alice.id, dict(env["body"], block_hash="0x" + "11" * 32),
                           type_="ledgermq.chain.log")
    code, out = verify_notification(tmp_path, node, {"envelope": fake})
    assert code == 3 and "another hash" in out, out
    fake = forged.envelope(alice.id, dict(env["body"], data="0x" + "00" * 32),
                           type_="ledgermq.chain.log")
    code, out = verify_notification(tmp_path, node, fake)
    assert code == 3 and "not the notified one" in out, out
    tampered = dict(env, body=dict(env["body"], log_index=env["body"]["log_index"]))
    tampered["sig"] = fake["sig"]
    assert verify_notification(tmp_path, node, tampered)[0] == 3
    assert env["from"] == server and env["type"] == "ledgermq.chain.log", env
    body = env["body"]
    log = r1["logs"][0]
    assert body["block_hash"] == r1["blockHash"] and body["tx_hash"] == r1["transactionHash"]
    assert body["block_number"] == int(r1["blockNumber"], 16) and body["chain_id"] == 1337
    assert body["log_index"] == int(log["logIndex"], 16) and body["topics"] == log["topics"]
    assert body["address"] == contract.lower() and body["data"] == log["data"]
    assert body["decoded"]["to"].lower() == bob_addr  # decoded addresses are EIP-55
    assert body["decoded"]["from"].lower() == node.accounts[0]
    assert str(body["decoded"]["value"]) == "5", body
    # Confirmed once 3 blocks are on it (its own counts).
    node.mine(2)
    conf = sa.expect("inbox", timeout=WAIT_S)["envelope"]
    assert conf["type"] == "ledgermq.chain.confirmed", conf
    assert conf["body"]["notice"] == lc.link(env) and conf["body"]["confirmations"] == 3
    assert conf["body"]["block_hash"] == r1["blockHash"]
    # A reorg: the log of the dropped branch is retracted, the new branch's notified.
    wait_tip(b, node)
    snap = node.snapshot()
    r2 = transfer(node, contract, bob_addr, 7)
    dropped = sa.expect("inbox", timeout=WAIT_S)["envelope"]
    assert dropped["body"]["tx_hash"] == r2["transactionHash"], dropped
    wait_tip(b, node)
    node.revert(snap)
    node.mine(1)  # a different block at r2's height
    r3 = transfer(node, contract, bob_addr, 9)
    got = [sa.expect("inbox", timeout=WAIT_S)["envelope"] for _ in range(2)]
    assert [e["type"] for e in got] == ["ledgermq.chain.retracted", "ledgermq.chain.log"], got
    assert got[0]["body"]["notice"] == lc.link(dropped)
    assert got[0]["body"]["block_hash"] == r2["blockHash"]
    assert got[1]["body"]["tx_hash"] == r3["transactionHash"]
    assert verify_notification(tmp_path, node, {"envelope": dropped})[0] == 3  # reorged away
    assert str(got[1]["body"]["decoded"]["value"]) == "9"
    rows = wait_tip(b, node)
    check_one_chain_equal_to_node(b, node, rows)
    assert b.wait_event("chain_reorg")["fork"] < int(r2["blockNumber"], 16)
    # Unwatched: no more notices.
    leaf, msg = send_env(sa, server, {"address": contract, "topic0": TRANSFER_TOPIC},
                         "ledgermq.chain.unwatch")
    assert leaf == "ack", msg
    transfer(node, contract, bob_addr, 11)
    node.mine(4)
    wait_tip(b, node)
    logs = [x for x in chain_envelopes(b) if x[0] == "ledgermq.chain.log"]
    assert [x[2]["decoded"]["value"] for x in logs] in (["5", "7", "9"], [5, 7, 9]), logs
    sa.close()


def notified_once(b, expected):
    """Every (block_hash, log_index) in expected notified exactly once, nothing else."""
    logs = [x[2] for x in chain_envelopes(b) if x[0] == "ledgermq.chain.log"]
    keys = [(x["block_hash"], x["log_index"]) for x in logs]
    return sorted(keys) == sorted(expected), keys


def test_kill9_while_logs_flow_notifies_every_log_exactly_once(start_broker, node):
    b = dc.ready_addresses(start_broker(config(node, poll_ms=10)))
    server = server_id(b)
    _, contract = node.deploy(TRANSFER_INITCODE)
    alice = lc.Identity()
    sa = dc.session(b, alice)
    assert send_env(sa, server, {"address": contract}, "ledgermq.chain.watch")[0] == "ack"
    sa.close()
    expected = []
    for round_ in range(3):
        for i in range(8):
            r = transfer(node, contract, "0x" + "cd" * 20, i)
            expected.append((r["blockHash"], int(r["logs"][0]["logIndex"], 16)))
        b.kill9()
        b.restart()
        dc.ready_addresses(b)
    wait_tip(b, node)
    wait_envelopes(b, lambda got: len([x for x in got if x[0] == "ledgermq.chain.log"]) >=
                   len(expected), "all logs")
    ok, keys = notified_once(b, expected)
    assert ok, (keys, expected)
    # The check's control: one log missing, or one twice, is caught.
    assert not notified_once(b, expected[:-1])[0]
    assert not notified_once(b, expected + expected[:1])[0]


def test_node_stopped_goes_node_down_then_back_and_nothing_is_missed(start_broker, node):
    b = dc.ready_addresses(start_broker(config(node, timeout_ms=200)))
    server = server_id(b)
    _, contract = node.deploy(TRANSFER_INITCODE)
    alice = lc.Identity()
    sa = dc.session(b, alice)
    assert send_env(sa, server, {"address": contract}, "ledgermq.chain.watch")[0] == "ack"
    wait_tip(b, node)
    r1 = transfer(node, contract, "0x" + "ef" * 20, 1)
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        b.wait_event("chain_state", timeout=WAIT_S, pred=lambda e: e["to"] == "node_down")
        status, body = healthz(b)
        assert (status, body) == (503, {"chain": "node_down", "status": "ready"})
        assert 'ledgermq_chain_state{state="node_down"} 1' in metrics(b)
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)
    r2 = transfer(node, contract, "0x" + "ef" * 20, 2)
    b.wait_event("chain_state", timeout=WAIT_S,
                 pred=lambda e: e["from"] != "node_down" and e["to"] == "following")
    wait_tip(b, node)
    expected = [(r["blockHash"], int(r["logs"][0]["logIndex"], 16)) for r in (r1, r2)]
    wait_envelopes(b, lambda got: notified_once(b, expected)[0], "both logs once")
    assert healthz(b)[0] == 200
    sa.close()


def watches(b):
    conn = db(b)
    try:
        return conn.execute("SELECT identity FROM chain_watches").fetchall()
    finally:
        conn.close()


def test_watches_end_when_the_identitys_last_stored_session_is_pruned(start_broker, node):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    b = dc.ready_addresses(start_broker(config(node) + "[jobs]\nprune_sessions = @every 1s\n"
                                        "prune_sessions.idle_s = 1\n"))
    server = server_id(b)
    alice, carol = lc.Identity(), lc.Identity()
    for who in (alice, carol):
        s = dc.session(b, who)
        assert send_env(s, server, {"address": "0x" + "77" * 20},
                        "ledgermq.chain.watch")[0] == "ack"
        s.close()
    # Alice keeps a stored session (expiry 1 h) and leaves it idle: it is pruned, her watch ends.
    p = mqtt.Client(client_id="alice-kept", protocol=mqtt.MQTTv5)
    p.username_pw_set(alice.id, lc.login(b.http_addr, alice))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    p.connect("127.0.0.1", b.mqtt_port, clean_start=False, properties=props)
    p.loop_start()
    b.wait_event("client_connected", pred=lambda e: e["client_id"] == "alice-kept")
    p.disconnect()
    p.loop_stop()
    ended = b.wait_event("chain_watches_ended", timeout=WAIT_S)
    assert ended["identity"] == alice.id and ended["count"] == 1, ended
    deadline = time.monotonic() + WAIT_S
    while len(watches(b)) != 1:
        assert time.monotonic() < deadline, watches(b)
        time.sleep(0.05)
    assert watches(b) == [(carol.id,)]  # carol has no stored session: hers stays


ERC20_SOURCE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;
contract Token {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);
    constructor(uint256 supply) {
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }
    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}
"""


def node_js(script, stdin):
    js_dir = os.path.dirname(jsdeps.node_modules())
    p = subprocess.run([jsdeps.node(), "-e", script] if not script.endswith(".js") else
                       [jsdeps.node(), os.path.join(js_dir, script)], input=stdin,
                       capture_output=True, text=True, timeout=120, cwd=js_dir)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_erc20_compiled_with_solc_transfers_arrive_decoded(start_broker, node):
    """An ERC-20 compiled here with npm solc; the watch is sent before it is deployed (its
    address computed from the deployer's nonce), then its Transfer events arrive decoded."""
    out = node_js("solc_compile.js", json.dumps({"source": ERC20_SOURCE, "contract": "Token"}))
    deployer = node.accounts[1]
    nonce = int(node.rpc("eth_getTransactionCount", [deployer, "pending"]), 16)
    address = node_js("const {getCreateAddress} = require('ethers');"
                      "process.stdout.write(JSON.stringify(getCreateAddress("
                      "{from: process.argv[1], nonce: Number(process.argv[2])})))"
                      .replace("process.argv[1]", json.dumps(deployer))
                      .replace("process.argv[2]", str(nonce)), "").lower()
    b = dc.ready_addresses(start_broker(config(node)))
    server = server_id(b)
    alice = lc.Identity()
    sa = dc.session(b, alice)
    assert send_env(sa, server, {"address": address, "event": TRANSFER_EVENT},
                    "ledgermq.chain.watch")[0] == "ack"
    assert node.rpc("eth_getCode", [address, "latest"]) == "0x"  # not deployed yet
    wait_tip(b, node)
    _, deployed = node.deploy(out["bytecode"] + "%064x" % 1000, from_=deployer)
    assert deployed.lower() == address
    to = node.accounts[2]
    data = "0xa9059cbb" + to[2:].rjust(64, "0") + "%064x" % 250  # transfer(to, 250)
    r = node.receipt(node.send_tx(from_=deployer, to=address, data=data))
    assert r["status"] == "0x1", r
    got = [sa.expect("inbox", timeout=WAIT_S)["envelope"] for _ in range(2)]
    assert [e["type"] for e in got] == ["ledgermq.chain.log"] * 2, got
    mint, sent = got[0]["body"]["decoded"], got[1]["body"]["decoded"]
    assert mint["from"] == "0x" + "00" * 20 and mint["to"].lower() == deployer, mint
    assert str(mint["value"]) == "1000", mint
    assert sent["from"].lower() == deployer and sent["to"].lower() == to, sent
    assert str(sent["value"]) == "250", sent
    assert got[1]["body"]["tx_hash"] == r["transactionHash"]
    sa.close()


def test_no_node_at_start_waits_and_says_so_then_follows_when_it_comes(start_broker, node):
    import socket
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % sock.getsockname()[1]
    b = dc.ready_addresses(start_broker(config(node, rpc=dead, timeout_ms=200)))
    b.wait_event("chain_waiting", timeout=WAIT_S)
    b.wait_event("chain_state", timeout=WAIT_S, pred=lambda e: e["to"] == "node_down")
    assert healthz(b) == (503, {"chain": "node_down", "status": "ready"})
    b.terminate()
    b.config_text = config(node)  # the node is there now
    b.restart()
    dc.ready_addresses(b)
    b.wait_event("chain_state", timeout=WAIT_S, pred=lambda e: e["to"] == "following")
    check_one_chain_equal_to_node(b, node, wait_tip(b, node))


def test_a_reorg_deeper_than_max_reorg_depth_halts_with_an_alarm(start_broker, node):
    b = dc.ready_addresses(start_broker(config(node, max_reorg_depth=2)))
    wait_tip(b, node)
    snap = node.snapshot()
    node.mine(4)
    before = wait_tip(b, node)
    node.revert(snap)
    node.send_tx(to=node.accounts[1], value=1)  # another block 1 down (empty ones may repeat)
    node.mine(5)  # a longer branch forking 4 blocks down: deeper than 2
    b.wait_event("chain_reorg_too_deep", timeout=WAIT_S)
    b.wait_event("chain_state", timeout=WAIT_S, pred=lambda e: e["to"] == "halted")
    assert healthz(b) == (503, {"chain": "halted", "status": "ready"})
    assert stored_headers(b) == before  # nothing rolled back: an operator decides
    node.mine(2)
    time.sleep(0.3)  # polls go on, following does not
    assert stored_headers(b) == before



class FakeNode:
    """A node in this process (no ganache): eth_chainId 1337, eth_blockNumber `head`, blocks
    0..head (hash n+1, parent n, as 32-byte words), eth_getLogs answering `logs` whatever the
    filter says (as a node that ignores fromBlock would). Stops with close()."""

    def __init__(self, head):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.head, self.logs, self.log_calls = head, [], 0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body = json.dumps([node.answer(r) for r in req] if isinstance(req, list)
                                  else node.answer(req))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    @staticmethod
    def word(n):
        return "0x%064x" % n

    def answer(self, r):
        m, result = r["method"], None
        if m == "eth_chainId":
            result = "0x539"
        elif m == "eth_blockNumber":
            result = self.head if isinstance(self.head, str) else hex(self.head)
        elif m == "eth_getBlockByNumber":
            n = int(r["params"][0], 16)
            if n <= self.head:
                result = {"number": hex(n), "hash": self.word(n + 1), "parentHash": self.word(n),
                          "timestamp": hex(1700000000 + n)}
        elif m == "eth_getLogs":
            self.log_calls += 1
            result = self.logs
        return {"jsonrpc": "2.0", "id": r["id"], "result": result}

    def log(self, number, address, index=0):
        return {"address": address, "topics": [], "data": "0x01", "blockNumber": hex(number),
                "blockHash": self.word(number + 1), "transactionHash": self.word(1000 + number),
                "transactionIndex": "0x0", "logIndex": hex(index), "removed": False}

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def fake_config(fake, extra=""):
    return ("[server]\nhttp = 127.0.0.1:0\n[chain]\nrpc = %s\nstart_block = 0\npoll_ms = 50\n"
            "timeout_ms = 1000\nconfirmations = 100\n%s" % (fake.url, extra))


def test_a_node_head_past_2_63_is_a_failed_poll_not_a_crash(start_broker):
    # A node (hostile or broken) answering eth_blockNumber 2^64-1 once made the catch-up's block
    # count wrap to 0 and the server abort on an assert: now a bad answer, state node_down.
    fake = FakeNode("0xffffffffffffffff")
    try:
        b = dc.ready_addresses(start_broker(fake_config(fake)))
        b.wait_event("chain_state", timeout=WAIT_S, pred=lambda e: e["to"] == "node_down")
        assert b.proc.poll() is None
        assert healthz(b) == (503, {"chain": "node_down", "status": "ready"})
    finally:
        fake.close()


def test_logs_outside_the_step_do_not_hide_the_logs_inside_it(start_broker):
    # A node that answers eth_getLogs with logs of blocks outside the asked range (one that
    # ignores fromBlock, say) once made the step skip every log after them: lost silently.
    fake = FakeNode(3)
    address = "0x" + "42" * 20
    try:
        b = dc.ready_addresses(start_broker(fake_config(fake)))
        b.wait_event("chain_state", timeout=WAIT_S, pred=lambda e: e["to"] == "following")
        alice = lc.Identity()
        sa = dc.session(b, alice)
        assert send_env(sa, server_id(b), {"address": address}, "ledgermq.chain.watch")[0] == "ack"
        fake.logs = [fake.log(1, address), fake.log(5, address), fake.log(9, address)]
        fake.head = 6  # the next step: blocks 4..6; its logs: the one of block 5
        env = sa.expect("inbox", timeout=WAIT_S)["envelope"]
        assert env["type"] == "ledgermq.chain.log" and env["body"]["block_number"] == 5, env
        deadline = time.monotonic() + WAIT_S
        while stored_headers(b)[-1][0] < 6:
            assert time.monotonic() < deadline, stored_headers(b)[-3:]
            time.sleep(0.05)
        with pytest.raises(queue.Empty):  # and nothing else (blocks 1 and 9: not in that step)
            sa.messages.get(timeout=1)
        sa.close()
    finally:
        fake.close()
