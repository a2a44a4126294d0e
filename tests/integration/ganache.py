"""A local Ethereum node for the tests: ganache (npm, tests/js) started per test or module.

start_ganache() runs tests/js/ganache_server.js under node on a free 127.0.0.1 port, with the
fixed mnemonic "test test ... junk" (so the accounts and their keys are always the same) and
instant mining (one block per transaction), waits until it answers eth_chainId, and returns a
Ganache. The node stops by itself when the test process goes away (its stdin closes) or after
max_seconds; stop() ends it at once. When it cannot start, the test FAILS (pytest.fail), it is
never skipped.

The `ganache_node` fixture gives a started Ganache per test:

    from ganache import ganache_node  # noqa: F401  (a fixture)

    def test_x(ganache_node):
        ganache_node.mine(3)

Ganache: url, accounts (lowercase 0x addresses, unlocked), keys (their private keys), rpc(method, params) (raises
RpcError with .code and .message on a JSON-RPC error), block_number(), mine(n),
snapshot()/revert(id), send_tx(from_, to, value, data) (from an unlocked account; returns the
hash, mined at once), deploy(initcode) (returns (tx hash, contract address)), receipt(hash),
sign_tx(...) (the raw signed transaction, not sent).
"""

import json
import os
import select
import subprocess
import time
import urllib.request

import pytest

import jsdeps

MNEMONIC = "test test test test test test test test test test test junk"
# Account 0 of MNEMONIC (m/44'/60'/0'/0/0).
ACCOUNT0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
CHAIN_ID = 1337
START_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__("JSON-RPC error %s: %s" % (code, message))
        self.code = code
        self.message = message


class Ganache:
    def __init__(self, proc, port, accounts, keys):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.accounts = accounts
        self.keys = keys  # the private keys of accounts, 0x hex
        self._id = 0

    def rpc(self, method, params=None):
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method,
                           "params": params if params is not None else []}).encode()
        req = urllib.request.Request(self.url, data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=RPC_TIMEOUT_S) as r:
            answer = json.loads(r.read())
        if "error" in answer:
            raise RpcError(answer["error"].get("code"), answer["error"].get("message"))
        return answer["result"]

    def block_number(self):
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, n=1):
        """Mines n empty blocks; returns the new head number."""
        for _ in range(n):
            self.rpc("evm_mine")
        return self.block_number()

    def snapshot(self):
        return self.rpc("evm_snapshot")

    def revert(self, snapshot_id):
        assert self.rpc("evm_revert", [snapshot_id]) is True, "evm_revert %s failed" % snapshot_id

    def _tx(self, from_, to, value, data, gas):
        tx = {"from": from_, "value": hex(value), "gas": hex(gas)}
        if to is not None:
            tx["to"] = to
        if data:
            tx["data"] = data
        return tx

    def send_tx(self, from_=None, to=None, value=0, data=None, gas=1_000_000):
        """Sends a transaction from an unlocked account (mined at once); returns its hash."""
        return self.rpc("eth_sendTransaction",
                        [self._tx(from_ or self.accounts[0], to, value, data, gas)])

    def sign_tx(self, from_=None, to=None, value=0, data=None, gas=100_000, nonce=None):
        """A raw signed legacy transaction (0x hex) from an unlocked account, not sent; the
        nonce is the account's next one unless given, the gas price the node's."""
        from_ = from_ or self.accounts[0]
        tx = self._tx(from_, to, value, data, gas)
        tx["nonce"] = hex(nonce) if nonce is not None else self.rpc(
            "eth_getTransactionCount", [from_, "pending"])
        tx["gasPrice"] = self.rpc("eth_gasPrice")
        return self.rpc("eth_signTransaction", [tx])

    def receipt(self, tx_hash):
        return self.rpc("eth_getTransactionReceipt", [tx_hash])

    def deploy(self, initcode, from_=None):
        """Deploys initcode (0x hex); returns (tx hash, contract address)."""
        h = self.send_tx(from_=from_, data=initcode, gas=3_000_000)
        r = self.receipt(h)
        assert r is not None and r["status"] == "0x1", "deploy failed: %r" % r
        return h, r["contractAddress"]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # ganache_server.js stops when stdin closes
            except OSError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def _fail(proc, why):
    err = ""
    if proc.poll() is None:
        proc.kill()
    try:
        _, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    except (subprocess.TimeoutExpired, ValueError):
        pass
    pytest.fail("ganache did not start: %s\n%s" % (why, (err or "")[-4000:]))


def start_ganache(chain_id=CHAIN_ID, accounts=5, max_seconds=300, block_time=0):
    """A started node (see the module's doc); fails the test when it cannot start."""
    js_dir = os.path.dirname(jsdeps.node_modules())
    node = jsdeps.node()
    script = os.path.join(js_dir, "ganache_server.js")
    if not os.path.isdir(os.path.join(js_dir, "node_modules", "ganache")):
        pytest.fail("tests/js/node_modules/ganache is missing (scripts/npm-deps.sh)")
    proc = subprocess.Popen(
        [node, script, "--chain-id", str(chain_id), "--accounts", str(accounts),
         "--max-seconds", str(max_seconds), "--block-time", str(block_time)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=js_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    line = ""
    while not line.endswith("\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            _fail(proc, "no port line within %.0f s" % START_TIMEOUT_S)
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = proc.stdout.readline()
            if chunk == "":
                _fail(proc, "exited with %s" % proc.wait())
            line += chunk
    try:
        hello = json.loads(line)
    except ValueError:
        _fail(proc, "bad port line %r" % line)
    g = Ganache(proc, hello["port"], hello["accounts"], hello["keys"])
    if not g.accounts or g.accounts[0] != ACCOUNT0:
        _fail(proc, "not the fixed mnemonic's accounts: %r" % g.accounts)
    while True:
        try:
            got = int(g.rpc("eth_chainId"), 16)
            assert got == chain_id, "ganache answers chain id %d, not %d" % (got, chain_id)
            return g
        except RpcError as e:
            _fail(proc, "eth_chainId: %s" % e)
        except (OSError, ValueError):
            if time.monotonic() > deadline or proc.poll() is not None:
                _fail(proc, "no answer to eth_chainId on %s" % g.url)
            time.sleep(0.1)


@pytest.fixture
def ganache_node():
    g = start_ganache()
    yield g
    alive = g.alive()
    g.stop()
    assert alive, "ganache died during the test"
