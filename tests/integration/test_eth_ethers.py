"""src/eth against npm ethers 6: the same keys and fields must give identical addresses (EIP-55),
Keccak-256 hashes, raw signed transactions (EIP-1559 and legacy EIP-155: libsecp256k1 and ethers
both use RFC 6979 nonces and low s, so the bytes are the same), transaction hashes, ABI
encodings, selectors and decoded logs; ethers parses our raw transactions back to the same
fields and sender, and we parse theirs. The C side is tests/tools/eth_tool.c, the reference
side tests/js/eth_ethers.js; both read and write JSON lines (see eth_tool.c's header).
"""

import hashlib
import json
import os
import random
import subprocess

import pytest

import jsdeps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIMEOUT_S = 60
SEED = 18
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

KEYS = ["0x%064x" % k for k in [1, N - 1] + [
    int.from_bytes(hashlib.sha256(b"ledgermq-eth-%d" % i).digest(), "big") % (N - 1) + 1
    for i in range(6)]]
CHAIN_IDS = [1, 5, 1337, 11155111, 2**40 + 7]
NONCES = [0, 1, 127, 128, 255, 256, 2**32, 2**53 - 1]
VALUES = [0, 1, 10**18, 2**255, 2**256 - 1, 123456789]
FEES = [0, 1, 10**9, 2**64, 2**200]
GAS = [21000, 2**32, 2**63]
TRANSFER = "0xa9059cbb" + "00" * 12 + "35" * 20 + "%064x" % 10**18


def eth_tool():
    path = os.environ.get("LMQ_ETH_TOOL", os.path.join(ROOT, "build", "tests", "eth_tool"))
    if not os.path.exists(path):
        pytest.fail("eth_tool is not built: %s" % path)
    return path


def run(cmd, cases, cwd=None):
    text = "".join(json.dumps(c) + "\n" for c in cases)
    r = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=TIMEOUT_S,
                       cwd=cwd)
    assert r.returncode == 0, "%s failed: %s" % (cmd[0], r.stderr)
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == len(cases), "%s answered %d of %d lines" % (cmd[0], len(out), len(cases))
    return out


def both(cases):
    c = run([eth_tool()], cases)
    js = run([jsdeps.node(), os.path.join(ROOT, "tests", "js", "eth_ethers.js")], cases,
             cwd=os.path.join(ROOT, "tests", "js"))
    return c, js


def assert_same(cases, c, js):
    for case, a, b in zip(cases, c, js):
        assert "error" not in a and "error" not in b, (case, a, b)
        assert a == b, "C and ethers differ for %s:\nC      %s\nethers %s" % (case, a, b)


def data_bytes(rng, n):
    return "0x" + bytes(rng.randrange(256) for _ in range(n)).hex()


def tx_cases(rng):
    datas = ["0x", "0x00", data_bytes(rng, 55), data_bytes(rng, 56), data_bytes(rng, 1024),
             TRANSFER]
    cases = []
    for i in range(48):
        case = {"op": "tx", "key": KEYS[i % len(KEYS)], "type": 2 if i % 2 else 0,
                "chainId": str(CHAIN_IDS[i % len(CHAIN_IDS)]),
                "nonce": str(NONCES[i % len(NONCES)]), "gasLimit": str(GAS[i % len(GAS)]),
                "to": None if i % 5 == 0 else "0x" + bytes(rng.randrange(256)
                                                           for _ in range(20)).hex(),
                "value": str(VALUES[i % len(VALUES)]), "data": datas[i % len(datas)]}
        if case["type"] == 2:
            fees = sorted([rng.choice(FEES), rng.choice(FEES)])
            case["maxPriorityFeePerGas"] = str(fees[0])
            case["maxFeePerGas"] = str(fees[1])
        else:
            case["gasPrice"] = str(rng.choice(FEES))
        cases.append(case)
    return cases


def test_ethers_agrees_on_addresses_hashes_and_signed_transactions():
    rng = random.Random(SEED)
    cases = [{"op": "address", "key": k} for k in KEYS]
    cases += [{"op": "keccak", "data": data_bytes(rng, n)}
              for n in [0, 1, 31, 32, 55, 56, 135, 136, 137, 272, 1000, 5000]]
    cases += tx_cases(rng)
    c, js = both(cases)
    assert_same(cases, c, js)
    assert sum(1 for case in cases if case["op"] == "tx") == 48


def test_ethers_parses_our_transactions_and_we_parse_theirs():
    rng = random.Random(SEED + 1)
    cases = tx_cases(rng)
    c, js = both(cases)
    addresses = {k: a["address"] for k, a in zip(KEYS, run([eth_tool()],
                                                           [{"op": "address", "key": k}
                                                            for k in KEYS]))}
    parses = [{"op": "parse", "raw": out["raw"]} for out in c]
    parses += [{"op": "parse", "raw": out["raw"]} for out in js]
    pc, pjs = both(parses)
    assert_same(parses, pc, pjs)
    for i, case in enumerate(cases):
        for got in (pc[i], pjs[i], pc[len(cases) + i]):
            assert got["from"] == addresses[case["key"]], (case, got)
            assert got["hash"] == c[i]["hash"]
            assert got["type"] == case["type"]
            for field in ("chainId", "nonce", "gasLimit", "value", "gasPrice",
                          "maxPriorityFeePerGas", "maxFeePerGas"):
                assert got[field] == case.get(field), (field, case, got)
            assert (got["to"] or "").lower() == (case["to"] or ""), (case, got)
            assert got["data"] == case["data"]
    # Control: a changed byte of the signed payload changes the sender (or is refused) on both
    # sides, so the sender comparison above can fail.
    raw = bytearray.fromhex(c[1]["raw"][2:])
    raw[len(raw) // 2] ^= 0x01
    tampered = [{"op": "parse", "raw": "0x" + raw.hex()}]
    tc, tjs = both(tampered)
    for got in (tc[0], tjs[0]):
        assert "error" in got or got["from"] != addresses[cases[1]["key"]], got


ABI_CASES = [
    ("f(uint8 a, int8 b, uint256 c, int256 d)",
     ["255", "-128", str(2**256 - 1), str(-(2**255))]),
    ("f(uint24,int40,uint,int)", ["0x10", "-5", "0", "-1"]),
    ("f(address,bool,bytes1,bytes32)",
     ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", True, "0xff", "0x" + "ab" * 32]),
    ("f(bytes,bytes,bytes,string,string)",
     ["0x", "0x" + "01" * 32, "0x" + "02" * 33, "", "h\u00e9llo \u2603 \U0001F600"]),
    ("f(uint256[],string[],bytes[2])",
     [["1", "2", "3"], ["a", "", "longer than thirty-two bytes, this string is"],
      ["0x00", "0x" + "ee" * 40]]),
    ("f(uint8[3][],int64[][2],address[],bool[2][2])",
     [[["1", "2", "3"], ["4", "5", "6"]], [["-1", "2"], []],
      ["0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"], [[True, False], [False, True]]]),
    ("f(string[][],uint256)", [[["x", "yy"], [], ["zzz"]], "7"]),
    ("transfer(address to, uint256 amount)",
     ["0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", str(10**18)]),
    ("f()", []),
]

LOG_CASES = [
    ("Transfer(address indexed from, address indexed to, uint256 value)",
     ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
      "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", str(10**20)]),
    # (ethers cannot encode an indexed array: eth_abi_decode_log gives its topic as it is too)
    ("Noted(string indexed tag, bytes indexed blob, int8 indexed level, uint256[] ids)",
     ["topic", "0x0102", "-3", ["1", "2"]]),
    ("Mixed(bool indexed ok, string note, bytes32 indexed id, uint256[] amounts, address who)",
     [True, "caf\u00e9", "0x" + "11" * 32, ["5", "6"],
      "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"]),
    ("Anon(uint256, string)", ["9", "no names"]),
]


def test_ethers_agrees_on_abi_encoding_selectors_and_logs():
    cases = [{"op": "abi", "sig": sig, "values": values} for sig, values in ABI_CASES]
    c, js = both(cases)
    assert_same(cases, c, js)
    for case, out in zip(cases, c):
        assert out["decoded"] == case["values"] or case["sig"].startswith("f(uint24"), out
    logs = run([jsdeps.node(), os.path.join(ROOT, "tests", "js", "eth_ethers.js")],
               [{"op": "enclog", "sig": sig, "values": values} for sig, values in LOG_CASES],
               cwd=os.path.join(ROOT, "tests", "js"))
    cases = [{"op": "log", "sig": sig, "topics": log["topics"], "data": log["data"]}
             for (sig, _), log in zip(LOG_CASES, logs)]
    c, js = both(cases)
    assert_same(cases, c, js)
    assert c[0]["args"]["value"] == str(10**20)
    # Both refuse the same bad inputs: a priority fee above the fee cap, a broken EIP-55 checksum, a uint8 out of range, a log of
    # another event.
    bad = [dict(tx_cases(random.Random(SEED))[1], maxPriorityFeePerGas="2", maxFeePerGas="1"),
           {"op": "abi", "sig": "f(address)",
            "values": ["0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed"]},
           {"op": "abi", "sig": "f(uint8)", "values": ["256"]},
           {"op": "log", "sig": "Other(uint256)", "topics": logs[0]["topics"][:1],
            "data": "0x" + "00" * 32}]
    bc, bjs = both(bad)
    for case, a, b in zip(bad, bc, bjs):
        assert "error" in a and "error" in b, (case, a, b)


def test_keygen_eth_writes_a_sealing_key_that_ethers_reads(tmp_path):
    path = str(tmp_path / "seal.json")
    r = subprocess.run([os.environ.get("LEDGERMQ_BIN", "ledgermq"), "keygen", "--eth", path],
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    address = r.stdout.strip()
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path) as f:
        key = json.load(f)
    assert key["type"] == "ledgermq-eth-key" and key["version"] == 1
    assert key["address"] == address and "kty" not in key
    (out,) = run([jsdeps.node(), os.path.join(ROOT, "tests", "js", "eth_ethers.js")],
                 [{"op": "address", "key": key["private_key"]}],
                 cwd=os.path.join(ROOT, "tests", "js"))
    assert out["address"] == address
    # Never overwritten; --eth with --out is a usage error.
    r = subprocess.run([os.environ.get("LEDGERMQ_BIN", "ledgermq"), "keygen", "--eth", path],
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 1 and "already exists" in r.stderr
    with open(path) as f:
        assert json.load(f) == key
