"""The Ethereum JSON-RPC client (src/eth/eth_rpc.c) through its probe (build/tests/eth-rpc-probe),
against ganache (tests/integration/ganache.py) and against a fake node in this file that
misbehaves on purpose (never answers, 500 then 200, huge, not JSON, batch answers reordered or
missing). What the client reports must equal what ganache says through a direct Python call."""

import json
import os
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ganache import ACCOUNT0, RpcError, start_ganache

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE = os.environ.get("LMQ_ETH_RPC_PROBE") or os.path.join(ROOT, "build", "tests",
                                                            "eth-rpc-probe")
PROBE_TIMEOUT_S = 30

# A contract whose every call emits LOG1(TOPIC) with the calldata as data. Runtime (44 bytes):
# CALLDATASIZE PUSH1 0 PUSH1 0 CALLDATACOPY PUSH32 TOPIC CALLDATASIZE PUSH1 0 LOG1 STOP;
# init: PUSH1 44 DUP1 PUSH1 11 PUSH1 0 CODECOPY PUSH1 0 RETURN.
TOPIC = "0x" + "ab" * 32
LOGGER_RUNTIME = "36" "6000" "6000" "37" "7f" + "ab" * 32 + "36" "6000" "a1" "00"
LOGGER_INITCODE = "0x" "602c" "80" "600b" "6000" "39" "6000" "f3" + LOGGER_RUNTIME
assert len(LOGGER_RUNTIME) == 2 * 0x2C


def run_probe(url, *cmds, opts=()):
    """Runs the probe; returns its output lines as JSON."""
    assert os.path.exists(PROBE), "build the probe first: %s" % PROBE
    r = subprocess.run([PROBE, *opts, url, *cmds], capture_output=True, text=True,
                       timeout=PROBE_TIMEOUT_S)
    assert r.returncode == 0, "probe exit %d: %s%s" % (r.returncode, r.stdout, r.stderr)
    return [json.loads(line) for line in r.stdout.splitlines()]


def probe(url, *cmds, opts=()):
    """Runs the probe; returns (result lines, POSTs it sent)."""
    lines = run_probe(url, *cmds, opts=opts)
    assert lines and "posts" in lines[-1], lines
    return lines[:-1], lines[-1]["posts"]


@pytest.fixture(scope="module")
def node():
    g = start_ganache()
    yield g
    alive = g.alive()
    g.stop()
    assert alive, "ganache died during the tests"


# ---- against ganache ----

def test_typed_calls_equal_what_ganache_says(node):
    _, contract = node.deploy(LOGGER_INITCODE)
    sent = [node.send_tx(to=contract, data="0x%02x%s" % (i, "5a" * i)) for i in range(3)]
    node.mine(2)
    head = node.block_number()
    raw = node.sign_tx(from_=node.accounts[1], to=node.accounts[2], value=12345)
    lines, posts = probe(
        node.url, "chain_id", "block_number", "gas_price", "priority_fee", "block:latest",
        "block:1", "logs:0:%d:%s" % (head, contract), "nonce:" + ACCOUNT0,
        "receipt:" + sent[1], "tx:" + sent[2], "block:%d" % (head + 100), "send_raw:" + raw)
    # Keyed by command name, blocks by their whole command ("block:1").
    by = {line["cmd"] if line["cmd"].startswith("block:") else line["cmd"].split(":")[0]: line
          for line in lines}
    assert all(line["status"] == "ok" for line in lines if line["cmd"] != "block:%d" % (
        head + 100)), lines
    assert by["chain_id"]["value"] == 1337
    assert by["block_number"]["value"] == head
    assert by["gas_price"]["value"] == int(node.rpc("eth_gasPrice"), 16)
    assert by["priority_fee"]["value"] == int(node.rpc("eth_maxPriorityFeePerGas"), 16)
    for cmd, number in (("block:latest", head), ("block:1", 1)):
        want = node.rpc("eth_getBlockByNumber", [hex(number), False])
        got = by[cmd]
        assert (got["number"], got["hash"], got["parentHash"], got["timestamp"]) == (
            number, want["hash"], want["parentHash"], int(want["timestamp"], 16)), got
        assert got["baseFee"] == int(want["baseFeePerGas"], 16)
    # A block past the head: the node answers null.
    assert by["block:%d" % (head + 100)]["status"] == "not_found"
    want_logs = node.rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(head),
                                          "address": [contract]}])
    assert len(want_logs) == 3
    got_logs = by["logs"]["logs"]
    assert [(g["address"], g["topics"], g["data"], g["blockNumber"], g["blockHash"],
             g["transactionHash"], g["logIndex"]) for g in got_logs] == [
        (w["address"], w["topics"], w["data"], int(w["blockNumber"], 16), w["blockHash"],
         w["transactionHash"], int(w["logIndex"], 16)) for w in want_logs]
    assert [g["topics"] for g in got_logs] == [[TOPIC]] * 3
    assert [g["transactionHash"] for g in got_logs] == sent
    assert by["nonce"]["value"] == int(node.rpc("eth_getTransactionCount",
                                                [ACCOUNT0, "pending"]), 16)
    want_r = node.receipt(sent[1])
    got_r = by["receipt"]
    assert (got_r["blockHash"], got_r["blockNumber"], got_r["from"], got_r["success"],
            got_r["gasUsed"], got_r["logCount"]) == (
        want_r["blockHash"], int(want_r["blockNumber"], 16), want_r["from"], True,
        int(want_r["gasUsed"], 16), 1)
    want_t = node.rpc("eth_getTransactionByHash", [sent[2]])
    got_t = by["tx"]
    assert (got_t["from"], got_t["nonce"], got_t["mined"], got_t["input"]) == (
        want_t["from"], int(want_t["nonce"], 16), True, want_t["input"])
    # The raw transaction went in: the hash the client got is mined, from account 1.
    receipt = node.receipt(by["send_raw"]["hash"])
    assert receipt is not None and receipt["status"] == "0x1"
    assert receipt["from"] == node.accounts[1]
    assert posts == len(lines)  # one POST per single call, nothing retried


class CountingProxy:
    """Forwards POSTs to ganache, counts them, and answers batches in reverse order (so the
    client must match answers by id)."""

    def __init__(self, target):
        proxy = self
        self.posts = 0
        self.batch_sizes = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.posts += 1
                doc = json.loads(body)
                if isinstance(doc, list):
                    proxy.batch_sizes.append(len(doc))
                req = urllib.request.Request(target, data=body,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    answer = json.loads(r.read())
                if isinstance(answer, list):
                    answer.reverse()
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_batch_of_50_calls_is_one_post_matched_by_id(node):
    head = node.mine(3)
    proxy = CountingProxy(node.url)
    try:
        lines, posts = probe(proxy.url, "batch:50")
    finally:
        proxy.close()
    # eth_blockNumber alone, then the 50 calls in one POST (an array of 50).
    assert proxy.posts == 2 and posts == 2
    assert proxy.batch_sizes == [50]
    assert len(lines) == 50 and all(line["status"] == "ok" for line in lines), lines
    hashes = {n: node.rpc("eth_getBlockByNumber", [hex(n), False])["hash"]
              for n in range(head + 1)}
    # Answered in reverse, each still reaches its own call: call i asked for block i % (head+1).
    assert sorted((line["i"], line["number"], line["hash"]) for line in lines) == [
        (i, i % (head + 1), hashes[i % (head + 1)]) for i in range(50)]


def test_closing_the_client_inside_a_callback_ends_the_batch_cleanly(node):
    # The 11th of 50 answers closes the client: the other 39 and the next command get no
    # callback, and nothing is used after it is freed (`make test-asan` builds the probe with
    # ASan too).
    lines = run_probe(node.url, "batch:50", "chain_id", opts=("--close-after", "11"))
    assert lines[-1] == {"closed": 11}
    assert len(lines) == 12 and lines[0]["cmd"] == "batch:50"
    assert all(line["status"] == "ok" for line in lines[:-1])


def test_jsonrpc_error_comes_back_with_code_not_retried(node):
    raw = node.sign_tx(from_=node.accounts[3], to=node.accounts[4], value=1)
    lines, posts = probe(node.url, "call:eth_noSuchMethod:[]", "send_raw:" + raw,
                         "send_raw:0xc0ffee", opts=("--retry-ms", "10"))
    # The code and message the node gives (ganache 7 says -32700 here; geth -32601).
    with pytest.raises(RpcError) as want:
        node.rpc("eth_noSuchMethod")
    assert lines[0]["status"] == "rpc_error", lines[0]
    assert (lines[0]["code"], lines[0]["message"]) == (want.value.code, want.value.message)
    assert "eth_noSuchMethod" in lines[0]["message"]
    assert lines[1]["status"] == "ok"
    # Bytes that are no transaction: the node refuses them; a JSON-RPC error is not retried.
    with pytest.raises(RpcError) as want:
        node.rpc("eth_sendRawTransaction", ["0xc0ffee"])
    assert lines[2]["status"] == "rpc_error", lines[2]
    assert (lines[2]["code"], lines[2]["message"]) == (want.value.code, want.value.message)
    assert posts == 3


# ---- against a fake node that misbehaves ----

def fake_block(n):
    return {"number": hex(n), "hash": "0x%064x" % (n + 1), "parentHash": "0x%064x" % n,
            "timestamp": hex(1700000000 + n)}


class FakeNode:
    """Behaviour by URL path; counts the POSTs per path."""

    def __init__(self):
        fake = self
        self.counts = {}
        self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body):
                out = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = self.path
                n = fake.counts[path] = fake.counts.get(path, 0) + 1
                if path == "/silent":
                    fake.stop.wait(20)  # never answers while the test runs
                    return
                if path == "/flaky" and n == 1:
                    return self.answer(500, b"busy")
                if path == "/429" and n == 1:
                    return self.answer(429, b"slow down")
                if path in ("/always500", "/404"):
                    return self.answer(500 if path == "/always500" else 404, b"no")
                if path == "/huge":
                    return self.answer(200, b'{"jsonrpc":"2.0","id":1,"result":"0x' +
                                       b"1" * 2_000_000 + b'"}')
                if path == "/notjson":
                    return self.answer(200, b"<html>a proxy error page</html>")
                if path == "/badqty":
                    return self.answer(200, {"jsonrpc": "2.0", "id": body["id"],
                                             "result": "0x01"})
                if isinstance(body, dict):
                    return self.answer(200, {"jsonrpc": "2.0", "id": body["id"],
                                             "result": "0x2a" if path != "/batch" else "0x4"})
                if path == "/wholeerror":
                    return self.answer(200, {"jsonrpc": "2.0", "id": None, "error": {
                        "code": -32600, "message": "batch too large"}})
                # /batch: every call but the third answered, shuffled, plus a stranger's id
                # and a second answer for the first call (ignored).
                out = [{"jsonrpc": "2.0", "id": c["id"],
                        "result": fake_block(int(c["params"][0], 16))}
                       for i, c in enumerate(body) if i != 2]
                out = out[1::2] + out[0::2]
                out.append({"jsonrpc": "2.0", "id": 999999, "result": None})
                out.append({"jsonrpc": "2.0", "id": body[0]["id"], "result": None})
                return self.answer(200, out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = FakeNode()
    yield f
    f.close()


def test_server_that_never_answers_times_out(fake):
    t0 = time.monotonic()
    lines, _ = probe(fake.base + "/silent", "block_number", opts=("--timeout-ms", "800"))
    took = time.monotonic() - t0
    assert lines[0]["status"] == "timeout", lines
    assert 0.7 <= took < 5, took
    assert fake.counts["/silent"] == 1


def test_5xx_and_429_are_retried(fake):
    opts = ("--retry-ms", "20")
    lines, posts = probe(fake.base + "/flaky", "block_number", opts=opts)
    assert lines[0] == {"cmd": "block_number", "status": "ok", "value": 42}
    assert fake.counts["/flaky"] == 2 and posts == 2
    lines, _ = probe(fake.base + "/429", "block_number", opts=opts)
    assert lines[0]["status"] == "ok" and fake.counts["/429"] == 2
    # Control: with one attempt the 500 is the answer.
    fake.counts.clear()
    lines, posts = probe(fake.base + "/flaky", "block_number", opts=opts + ("--attempts", "1"))
    assert lines[0]["status"] == "http" and "500" in lines[0]["message"], lines
    assert fake.counts["/flaky"] == 1 and posts == 1


def test_retries_are_bounded_and_4xx_is_not_retried(fake):
    opts = ("--retry-ms", "10", "--attempts", "3")
    lines, posts = probe(fake.base + "/always500", "block_number", opts=opts)
    assert lines[0]["status"] == "http" and "after 3 attempts" in lines[0]["message"], lines
    assert fake.counts["/always500"] == 3 and posts == 3
    lines, posts = probe(fake.base + "/404", "block_number", opts=opts)
    assert lines[0]["status"] == "http" and "404" in lines[0]["message"]
    assert fake.counts["/404"] == 1 and posts == 1
    # Nobody listening: a transport error, retried, then reported.
    fake.close()
    lines, posts = probe(fake.base + "/", "chain_id", opts=opts)
    assert lines[0]["status"] == "transport" and posts == 3, lines


def test_huge_answer_is_cut_with_a_clear_error(fake):
    lines, posts = probe(fake.base + "/huge", "block_number", opts=("--max-bytes", "65536"))
    assert lines[0]["status"] == "too_big" and "over 65536 bytes" in lines[0]["message"], lines
    assert posts == 1  # not retried


def test_malformed_answers_are_errors_not_crashes(fake):
    lines, _ = probe(fake.base + "/notjson", "block_number")
    assert lines[0]["status"] == "bad_answer" and "not JSON" in lines[0]["message"], lines
    lines, _ = probe(fake.base + "/badqty", "block_number")  # "0x01": a leading zero
    assert lines[0]["status"] == "bad_answer" and "QUANTITY" in lines[0]["message"], lines
    lines, _ = probe(fake.base + "/wholeerror", "batch:5")
    assert [(x["status"], x.get("code")) for x in lines] == [("rpc_error", -32600)] * 5
    # Five calls for blocks 0..4; the third is never answered: only it fails.
    lines, posts = probe(fake.base + "/batch", "batch:5")
    assert posts == 2 and len(lines) == 5
    ok = sorted((x["i"], x["number"], x["hash"]) for x in lines if x["status"] == "ok")
    assert ok == [(n, n, "0x%064x" % (n + 1)) for n in (0, 1, 3, 4)]
    missing = [x for x in lines if x["status"] != "ok"]
    assert len(missing) == 1 and missing[0]["status"] == "bad_answer" and missing[0]["i"] == 2
    assert "no answer" in missing[0]["message"]
