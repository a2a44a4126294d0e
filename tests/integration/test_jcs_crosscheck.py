"""RFC 8785 (JCS) cross-check: our canonical form against the npm `canonicalize` package.

About 2,000 JSON documents, generated from a fixed seed (nested objects and arrays, member
names from the astral planes and the BMP private-use area so that UTF-16 and UTF-8 orders
differ, control characters, U+2028, doubles at the extremes, around powers of two and near
2^53), are canonicalized by node + canonicalize and by tests/tools/jcs_tool (LMQ_JCS_TOOL);
the outputs must be byte-identical. A handful of invalid documents (lone surrogates) must be
refused by both.
"""

import json
import os
import random
import shutil
import struct
import subprocess

import pytest

import jsdeps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
JS_DIR = os.path.join(ROOT, "tests", "js")
SEED = 8785
DOC_COUNT = 2000
MAX_DEPTH = 5
TIMEOUT_S = 300

EXTREME_NUMBERS = [
    "5e-324", "-5e-324", "1.7976931348623157e308", "-1.7976931348623157e308", "1e21", "1e-7",
    "1e-6", "0.000001", "999999999999999900000", "999999999999999700000", "-0.0", "0", "-0",
    "0.1", "1e23", "9.999999999999997e22", "2.2250738585072014e-308", "4.9406564584124654e-324",
    "9007199254740991", "9007199254740992", "9007199254740993", "9007199254740994",
    "-9007199254740993", "18014398509481985", "123456789012345678901234567890", "1e-400",
    "333333333.33333329", "1E30", "4.50", "2e-3", "0.000000000000000000000000001",
    "1424953923781206.25", "295147905179352825856", "-0.0000033333333333333333",
]
NAME_POOLS = [
    "abcxyzABCXYZ019_-",
    "".join(chr(c) for c in range(0x01, 0x20)) + "\"\\/",
    "".join(chr(c) for c in range(0xE000, 0xE010)) + "\uF8FF\uFB33\uFFFD\uFFEE",
    "\U0001F600\U0001F601\U00010000\U0010FFFF\U0001D11E\U00020000",
    "\u00e9\u00f6\u0080\u20ac\u2028\u2029\u0300\u4e2d\u05d3",
]


def _random_double(rng):
    while True:
        bits = rng.getrandbits(64)
        value = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if value == value and value not in (float("inf"), float("-inf")):
            return value


def _number_text(rng):
    pick = rng.random()
    if pick < 0.25:
        return rng.choice(EXTREME_NUMBERS)
    if pick < 0.5:
        return repr(_random_double(rng))
    if pick < 0.65:  # powers of two: the asymmetric rounding interval
        exp = rng.randint(-1074, 1023)
        value = 2.0 ** exp
        return repr(-value if rng.random() < 0.5 else value)
    if pick < 0.8:
        return str(rng.randint(-(2 ** 60), 2 ** 60))
    digits = rng.randint(1, 20)
    mantissa = rng.randint(0, 10 ** digits)
    # Exponents kept clear of overflow (tested on its own): at most ~1e308.
    return "%s%de%d" % (rng.choice(["", "-"]), mantissa, rng.randint(-340, 308 - digits))


def _random_text(rng, max_len, allow_nul):
    pool = rng.choice(NAME_POOLS)
    text = "".join(rng.choice(pool) for _ in range(rng.randint(0, max_len)))
    if allow_nul and rng.random() < 0.1:
        text += "\x00"
    return text


def _value_text(rng, depth):
    """A JSON text built by hand, so that number spellings are kept as written."""
    pick = rng.random()
    if depth < MAX_DEPTH and pick < 0.3:
        names = set()
        members = []
        for _ in range(rng.randint(0, 7)):
            name = _random_text(rng, 6, allow_nul=False)  # jansson cannot hold NUL in a name
            if name in names:
                continue
            names.add(name)
            members.append("%s:%s" % (json.dumps(name, ensure_ascii=rng.random() < 0.5),
                                      _value_text(rng, depth + 1)))
        return "{" + rng.choice([",", ", ", " ,\t"]).join(members) + "}"
    if depth < MAX_DEPTH and pick < 0.45:
        items = [_value_text(rng, depth + 1) for _ in range(rng.randint(0, 6))]
        return "[" + ",".join(items) + "]"
    if pick < 0.75:
        return _number_text(rng)
    if pick < 0.95:
        return json.dumps(_random_text(rng, 12, allow_nul=True), ensure_ascii=rng.random() < 0.5)
    return rng.choice(["true", "false", "null"])


def _documents():
    rng = random.Random(SEED)
    docs = [_value_text(rng, 0) for _ in range(DOC_COUNT)]
    # Every power of two once, as arrays of 64.
    powers = [repr(2.0 ** e) for e in range(-1074, 1024)]
    docs += ["[" + ",".join(powers[i:i + 64]) + "]" for i in range(0, len(powers), 64)]
    # The UTF-16 ordering case that differs from UTF-8 byte order.
    docs.append('{"\\ue000":1,"\\ud83d\\ude00":2,"\\uffff":3,"\\ud800\\udc00":4}')
    # Lone surrogates and overflow to Infinity: both implementations must refuse them.
    invalid = ['"\\ud800"', '{"\\udc00":1}', '["\\ud83d x"]', "[1E400]", "-1e309"]
    return docs, invalid


def _ensure_node_modules():
    """The npm packages of tests/js, installed (or refreshed) by scripts/npm-deps.sh."""
    jsdeps.node_modules()


def _run(cmd, docs, cwd=None):
    data = "".join(d + "\n" for d in docs).encode("utf-8")
    proc = subprocess.run(cmd, input=data, capture_output=True, cwd=cwd, timeout=TIMEOUT_S)
    assert proc.returncode == 0, "%s failed: %s" % (cmd[0], proc.stderr.decode(errors="replace"))
    lines = proc.stdout.split(b"\n")  # bytes: U+2028 is not a line break here
    assert lines[-1] == b""
    return lines[:-1]


def test_jcs_matches_npm_canonicalize():
    tool = os.environ.get("LMQ_JCS_TOOL")
    assert tool and os.access(tool, os.X_OK), "LMQ_JCS_TOOL must name the built jcs_tool"
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: it is needed for the JCS cross-check")
    _ensure_node_modules()
    docs, invalid = _documents()
    script = os.path.join(JS_DIR, "canonicalize_lines.mjs")
    ours = _run([tool], docs + invalid)
    theirs = _run([node, script], docs + invalid, cwd=JS_DIR)
    assert len(ours) == len(theirs) == len(docs) + len(invalid)
    mismatches = [(doc, a, b) for doc, a, b in zip(docs, ours, theirs) if a != b]
    assert not mismatches, "%d of %d differ; first: input %r\n ours   %r\n theirs %r" % (
        len(mismatches), len(docs), *mismatches[0])
    # Every generated document is valid I-JSON: a refusal on both sides would hide a bug.
    refused = [d for d, a in zip(docs, ours) if a.startswith(b"ERROR")]
    assert not refused, refused[:3]
    for doc, a, b in zip(invalid, ours[len(docs):], theirs[len(docs):]):
        assert a == b"ERROR bad_json", (doc, a)
        assert b == b"ERROR", (doc, b)
